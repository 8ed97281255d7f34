"""Google Play: push authentication, the Play Developer API client, translation to events."""
