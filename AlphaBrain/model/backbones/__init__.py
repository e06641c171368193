"""VLM backbones of the large frameworks: a Hugging Face vision-language model behind one small interface.

Each backbone module imports transformers, so nothing here is imported with
`AlphaBrain.model`; the framework modules that need one import it.
"""
