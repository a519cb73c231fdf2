"""The leads' page: served by the bot under /dashboard, signed in through a one-time link the bot
sends privately in Slack or Teams."""
