"""What only a local run needs: the embedded Postgres, the Pub/Sub emulator and the relay that
stands in for a push subscription, the `serve` supervisor and progress display. The deployed
functions never import this package."""
