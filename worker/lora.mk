# worker/lora.mk: LoRA adapters (engine part in libweftengine.a, adapter
# files in libweftmodel.a).
worker_libweftengine_a_SOURCES += worker/lora.c worker/lora.h worker/lora_train.c worker/lora_train.h
worker_libweftmodel_a_SOURCES += worker/adapter.c worker/adapter.h
