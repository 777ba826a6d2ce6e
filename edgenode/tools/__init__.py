"""Developer tools, apart from the daemon's path: camera simulator, viewer, demo, TFLite builder, evaluation."""
