"""Pure logic: geometry, pixel conversion, decoders, NMS, Kalman filter, assignment, tracker.

Nothing under ``core`` does I/O: no zenoh, ctypes, mmap, sockets or files. Every function takes
and returns plain values and numpy arrays, so tests drive it with crafted arrays.
"""
