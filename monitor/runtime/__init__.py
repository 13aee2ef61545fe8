"""The running daemon: the service (schedules, sweeps, states), the history recorder, the daily mailer, wired by app."""
