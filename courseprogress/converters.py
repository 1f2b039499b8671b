class IdConverter:
    """A path id: digits only, short enough for a 64-bit integer (longer ones are a 404)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        return str(value)
