"""Text features shared by RSE and lineage: :mod:`~distill_kit.text.stylometry` (style and structure of one
answer, edit-distance structure similarity, the surface feature set) and :mod:`~distill_kit.text.embed`
(sentence embeddings with a disk cache; the bundled MiniLM through ONNX int8 by default on CPU)."""

#: the public modules (each says what it holds in its own docstring); a new module is added here
__all__ = ["embed", "stylometry"]
