"""The one way a policy refuses an event: a stable reason code and a sentence naming the rule or field."""


class Rejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
