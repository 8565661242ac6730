"""Training loops: the shared checkpoint/resume/logging machinery and the trainers."""
