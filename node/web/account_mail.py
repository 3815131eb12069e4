"""The mail of account security and of registration, in the member's own language.

These messages are always sent: they carry no unsubscribe link, and no
preference turns them off. Each is committed with the change it is about
(see node.storage.accounts); call ``sent(request)`` after the commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from node.account_links import AccountLinks, Purpose
from node.domain import Account
from node.letters import compose
from node.mail import OutgoingMail
from node.storage.settings import load_settings


def links(request: Request) -> AccountLinks:
    return AccountLinks(request.state.config.secret_key)


def sent(request: Request) -> None:
    """Mail was committed: the worker sends it now rather than at its next look."""
    request.state.mailer.wake()


@dataclass(frozen=True, slots=True)
class AccountMail:
    node_name: str
    public_url: str
    links: AccountLinks
    verify_required: bool  # members confirm their address before joining a group

    @classmethod
    async def of(cls, request: Request) -> AccountMail:
        settings = await load_settings(request.state.db)
        return cls(settings.name, request.state.config.public_url, links(request),
                   settings.require_verified_email)

    def _letter(self, template: str, *, to: str, name: str, language: str,
                account_id: int | None, **context: Any) -> OutgoingMail:
        return compose(template, to=to, kind=template, language=language, account_id=account_id,
                       context={"node_name": self.node_name, "name": name, **context})

    def _to(self, template: str, account: Account, **context: Any) -> OutgoingMail:
        assert account.email is not None
        return self._letter(template, to=account.email, name=account.display_name,
                            language=account.language, account_id=account.id, **context)

    def verification(self, account_id: int, email: str, name: str,
                     language: str) -> OutgoingMail:
        token = self.links.token(Purpose.VERIFY, account_id, email)
        return self._letter("verify_email", to=email, name=name, language=language,
                            account_id=account_id, required=self.verify_required,
                            verify_url=f"{self.public_url}/account/verify/{token}")

    def verification_again(self, account: Account) -> OutgoingMail:
        assert account.email is not None
        return self.verification(account.id, account.email, account.display_name,
                                 account.language)

    def reset(self, account: Account, password_hash: str | None) -> OutgoingMail:
        token = self.links.token(Purpose.RESET, account.id, account.email, password_hash)
        return self._to("password_reset", account,
                        reset_url=f"{self.public_url}/login/reset/{token}")

    def password_changed(self, account: Account) -> OutgoingMail:
        return self._to("password_changed", account, reset_url=f"{self.public_url}/login/reset")

    def email_change(self, account: Account, new_email: str) -> list[OutgoingMail]:
        """The link to the new address, and word of it to the address in use."""
        token = self.links.token(Purpose.EMAIL, account.id, account.email, new_email)
        return [
            self._letter("email_change", to=new_email, name=account.display_name,
                         language=account.language, account_id=account.id,
                         confirm_url=f"{self.public_url}/account/email/{token}"),
            self._to("email_change_notice", account,
                     reset_url=f"{self.public_url}/login/reset"),
        ]

    def approved(self, account: Account) -> OutgoingMail:
        return self._to("account_approved", account, login_url=f"{self.public_url}/login")

    def rejected(self, account: Account) -> OutgoingMail:
        """Sent after the account is erased, so kept under no account."""
        assert account.email is not None
        return self._letter("account_rejected", to=account.email, name=account.display_name,
                            language=account.language, account_id=None)
