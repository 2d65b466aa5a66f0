"""Model providers: the embedded local model, OpenAI-compatible upstreams, test fakes."""

from thrifty.providers.base import Provider

__all__ = ["Provider"]
