"""Camera simulator: publishes frames in shared buffers over Zenoh, as the EdgeFirst camera does.

``edgenode-camera`` (or ``python -m edgenode.camera``) renders a synthetic moving scene, still
images or a video into a ring of memfd (or ``/dev/dma_heap``) buffers and publishes a
``DmaBuffer`` (or ``CameraFrame``) per frame plus ``CameraInfo`` now and then.
"""
