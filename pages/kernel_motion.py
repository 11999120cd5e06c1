"""Kernel motion — lazy or rich? How far the empirical NTK moves during training, against width."""

import runner
from ui import sidebar, theory, theory_motion

view = sidebar.current()
C = runner.THEORY_CLAIMS

theory.header(
    "Kernel motion",
    "Does training move the kernel? A *lazy* network keeps its initial NTK (it trains like a "
    "kernel machine); a *rich* one changes it (it learns features). How does that depend on "
    "width, and how fast does the motion vanish as the network gets wider?",
    "The relative change ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F after training against width on log–log axes: "
    "its slope says how fast the kernel freezes (−1/2 or −1?), and where the points bend. Then "
    "the kernel velocity over epochs (a burst first, then a slow drift) and the kernel–target "
    "alignment (does the kernel turn towards the labels, and less so when wide?). Compare the "
    "NTK and the standard parameterization.",
    [(C["kernel_change_exponent"].quote, C["kernel_change_exponent"].reference),
     (C["velocity_fast_then_slow"].quote, C["velocity_fast_then_slow"].reference),
     (C["alignment_rises"].quote, "Baratin et al. 2021, AISTATS (arXiv:2008.00938), abstract"),
     (C["alignment_less_for_wider"].quote, C["alignment_less_for_wider"].reference)])

proto = theory.choose_protocol(runner.motion_protocol, "km_full",
                               "Run the full protocol", network=view.config.network)
res = theory.compute(runner.kernel_motion, proto, f"Kernel motion ({proto.name} protocol)") if proto else None

if res is not None:
    theory_motion.kernel_motion_body(res)
