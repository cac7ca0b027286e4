"""cnn_lib."""
