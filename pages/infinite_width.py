"""Infinite width — the limit, and how fast finite networks approach it."""

import runner
from ui import sidebar, theory, theory_motion

view = sidebar.current()
C = runner.THEORY_CLAIMS

theory.header(
    "Infinite width",
    "As the hidden layer gets wider, the random network's kernels approach deterministic "
    "infinite-width kernels (the NTK and the NNGP), and training becomes kernel regression. "
    "How close is a network of width w, and how fast does the gap close?",
    "The relative distance of the empirical kernels at initialization to the analytic ones, on "
    "log–log axes: a slope of −1/2 (a sum over w independent units). The output Gram of a single "
    "network that does NOT converge, and why. Then the accuracy of trained networks against the "
    "infinite-width predictors: NTK regression, the NNGP posterior mean, and the infinite-width "
    "linear model trained exactly like the networks.",
    [(C["inf_ntk_rate"].quote, C["inf_ntk_rate"].reference),
     (C["inf_outputs_rate"].quote, C["inf_outputs_rate"].reference),
     (C["inf_nngp_rate"].quote, C["inf_nngp_rate"].reference)])

proto = theory.choose_protocol(runner.infinite_protocol, "iw_full",
                               "Run the full protocol", network=view.config.network)
res = theory.compute(runner.infinite_width, proto, f"Infinite width ({proto.name} protocol)") if proto else None

if res is not None:
    theory_motion.infinite_width_body(res)
