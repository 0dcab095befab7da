# worker/lora.mk: LoRA adapters (engine part in libweftengine.a, adapter
# files in libweftmodel.a).
