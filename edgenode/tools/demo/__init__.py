"""The self-contained demo: a model the project builds itself, the camera simulator, the node and a viewer."""
