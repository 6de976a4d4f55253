"""Knowledge distillation (docs/distillation.md).

loss     the distillation, hard-label and hint losses with their gradients (Hinton et al. 2015, FitNets)
train    the student's training loop with a teacher's soft or hard targets
student  students initialised from the teacher: layer dropping, width slicing
hints    FitNets hint training on models (guided layer + regressor, then KD)
"""
