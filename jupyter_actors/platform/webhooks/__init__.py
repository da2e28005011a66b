"""Webhooks as Apify has them: ``store`` keeps webhooks and their dispatches, ``templates`` renders
payloads and headers, ``service`` turns platform events into stored dispatches, ``delivery`` sends them."""
