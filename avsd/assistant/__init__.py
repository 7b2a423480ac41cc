"""The offline assistant: a brain of the local AVS server (grammar, intents, skills, music, a Rasa bridge)."""
