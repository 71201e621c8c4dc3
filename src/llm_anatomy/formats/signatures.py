"""How the torch checkpoints begin, for detection (formats/__init__) and for the torch reader
(torch_zip), in a module of their own so that the reader does not import the package that
picks it. (GGUF's magic is GGML data: core/ggml_types.)"""

ZIP_MAGIC = b"PK\x03\x04"  # torch.save since torch 1.6
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickle protocol 2, then torch's magic number
