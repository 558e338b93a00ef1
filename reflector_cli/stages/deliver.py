"""post_zulip and send_webhook: deliver a finished transcript; skipped when not configured.

Their failures are recorded on the run and never flip the transcript to `error`.
"""

from __future__ import annotations

from reflector_cli.context import StageContext
from reflector_cli.models import DeliveryIn, DeliveryOut


def post_zulip(inp: DeliveryIn, ctx: StageContext) -> DeliveryOut:
    if not inp.enabled:
        return DeliveryOut(status="skipped", detail="delivery disabled (--no-deliver)")
    if not ctx.settings.zulip_configured:
        return DeliveryOut(status="skipped", detail="Zulip is not configured (ZULIP_REALM …)")
    return DeliveryOut(status="skipped", detail="Zulip client not available in this release")


def send_webhook(inp: DeliveryIn, ctx: StageContext) -> DeliveryOut:
    if not inp.enabled:
        return DeliveryOut(status="skipped", detail="delivery disabled (--no-deliver)")
    if not ctx.settings.webhook_url:
        return DeliveryOut(status="skipped", detail="WEBHOOK_URL is not set")
    return DeliveryOut(status="skipped", detail="webhook client not available in this release")
