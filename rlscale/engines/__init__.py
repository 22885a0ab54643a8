"""Adapters over model engines (transformers, peft, vLLM). The only place that imports them."""
