"""taskrunner: event-driven ECS Fargate task runner."""
