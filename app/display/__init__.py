"""Image display: IHE Invoke Image Display (RAD-106) requests."""
