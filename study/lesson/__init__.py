"""The lesson as a companion (study.core.companions, study.analysis.companion): its claims, its first model, its
report sections and the synthesis across its studies; the core never names them. `lesson: true` switches it on."""
