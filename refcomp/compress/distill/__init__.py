"""Knowledge distillation (docs/distillation.md).

loss   the distillation and hint losses with their gradients (Hinton et al. 2015)
train  the student's training loop with a teacher's soft targets
"""
