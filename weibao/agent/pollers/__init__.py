"""One module per protocol; each turns raw readings into samples of the metric vocabulary."""
