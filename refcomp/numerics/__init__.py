"""Number formats and rounding: the lowest layer every op and quantizer reads.

dtypes    the table of quantized dtypes (name, ONNX enum, storage, range), one source
rounding  the rounding modes (half to even, half away from zero) and their definitions
"""
