"""rsscale: ResNet-RS scaling studies made routine."""

__version__ = "0.1.0"
