"""The controller process: the loop that joins sources, policy engine and actuators, the apps
it runs, their store, the daemon and its settings."""
