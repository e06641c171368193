"""VLM backbones of the large policies: a Hugging Face vision-language model behind one small interface.

Each backbone module imports transformers, so nothing here is imported with
`AlphaBrain.model`; the policy modules that need one import it. Backbones build on
`AlphaBrain.model.core` only (never on `policies`).
"""
