"""One screen per mode (system, config, train, eval, chat) plus the modal dialogs."""
