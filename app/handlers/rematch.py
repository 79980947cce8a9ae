"""Rematch API: ``POST /api/games/<id>/rematch`` from a finished game's page."""

from __future__ import annotations

from app.handlers.session import ApiHandler
from app.services.challenges import ChallengePending

__all__ = ["RematchApi"]


class RematchApi(ApiHandler):
    """``POST /api/games/<id>/rematch`` → 201 with the challenge (seats swapped).

    When the pair already has a pending challenge (the opponent offered first, or
    a double click), 409 ``challenge_pending`` names it in ``challenge_id`` and
    gives it in ``challenge``, so the page can offer to accept it.
    """

    async def post(self, game_id: str) -> None:
        me = self.viewer().username
        lobby = self.web.lobby
        try:
            challenge = await lobby.rematch(game_id, me)
        except ChallengePending as pending:
            body = {
                "error": pending.code,
                "message": str(pending),
                "challenge_id": pending.challenge_id,
                "challenge": await lobby.find(pending.challenge_id),
            }
            self.write_json(body, status=409)
            return
        self.write_json(challenge, status=201)
