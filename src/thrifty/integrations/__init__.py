"""Drop-ins for other libraries: OpenAI SDK clients, LangChain, any model's inference."""
