# tests/lora/: LoRA adapters and packed multi-tenant training.
