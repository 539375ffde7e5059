"""simpletuner-cloud: train SimpleTuner LoRAs on Replicate's GPUs from your own machine."""

__version__ = "0.1.0"
