"""Every `cityfed` command, in one place: node commands over `node`, region commands over
`federation`. Nothing else imports this package."""
