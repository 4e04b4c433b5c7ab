"""Reading words spelled in CamelCase (OCPP 1.6 names, as releases before 0.2 wrote
them to files) as the agent's own lowercase words."""


def neutral(value):
    """The core's word for ``value``: itself, or the snake_case of a CamelCase name
    (what releases before 0.2 persisted); None stays None."""
    if not isinstance(value, str) or value.islower() or not value:
        return value
    out = []
    for i, ch in enumerate(value):
        if ch.isupper() and i and (value[i - 1].islower() or (i + 1 < len(value) and value[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out).replace("__", "_")
