"""App-submitted purchases (POST /v1/purchases): validate with the store, link, answer."""
