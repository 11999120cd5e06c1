"""Home: what the empirical NTK is, the conventions used, and how to read the pages."""

import streamlit as st

from ui import sidebar

view = sidebar.current()

st.title("NTK Explorer")
st.markdown(
    "A hands-on look at the **empirical Neural Tangent Kernel** (NTK) of a one-hidden-layer "
    "ReLU network trained on MNIST: how its eigenvalues move during training and how they "
    "depend on regularization, training-set size and width.")

st.subheader("What is the NTK?")
st.markdown("For a network $f(x;\\theta)$ and training inputs $x_1,\\dots,x_n$, the NTK is the "
            "Gram matrix of parameter gradients:")
st.latex(r"\Theta_{ij} \;=\; \nabla_\theta f(x_i)\cdot\nabla_\theta f(x_j)")
st.markdown("Under gradient flow with learning rate $\\eta$, the outputs on the training set move as")
st.latex(r"\frac{df}{dt} \;=\; -\,\eta\,\Theta\,\nabla_f L")
st.markdown(
    "so in the eigenbasis of $\\Theta$ each error component shrinks at a rate proportional to "
    "its eigenvalue: **large eigenvalues are learned fast, small ones slowly**. The largest "
    "eigenvalue also bounds the stable learning rate of gradient descent: for our ½·mean loss "
    "the linearized update is $f \\leftarrow f - \\tfrac{\\eta}{n}\\,\\Theta_{\\text{full}}(f-y)$, "
    "stable only while $\\eta < 2n/\\lambda_{\\max}(\\Theta_{\\text{full}})$, where "
    "$\\Theta_{\\text{full}}$ is the full $(10n)\\times(10n)$ kernel over samples *and* logits. "
    "The traced kernel shown on most pages is the mean of its 10 diagonal blocks, whose "
    "$\\lambda_{\\max}$ is never larger (for these networks 1.2–1.4× smaller at n = 500): "
    "$2n/\\lambda_{\\max}(\\text{traced})$ is therefore only an upper limit on the stable rate, "
    "not a safe rate. The spread of the spectrum says how many directions dominate learning.")

st.subheader("Conventions")
st.markdown(
    "- **Traced kernel**: the network has 10 outputs; $\\Theta$ here is the *mean over the 10 "
    "logits* of the per-logit kernels (an $n\\times n$ matrix).\n"
    "- **Θ vs Θ/n** (sidebar *Kernel normalization*): raw $\\Theta$ grows with $n$ "
    "(its trace is a sum over samples); $\\Theta/n$ is the operator that actually appears in "
    "the dynamics of the mean loss and stays comparable across $n$. Every axis title says "
    "which one is shown.\n"
    "- **Parameterization**: *standard* (PyTorch `nn.Linear` default: every weight and bias "
    "drawn from $U(\\pm 1/\\sqrt{\\text{fan-in}})$) or *NTK* (all raw parameters "
    "$\\sim\\mathcal N(0,1)$, with the factor $\\sigma_w/\\sqrt{\\text{fan-in}}$ applied in "
    "the forward pass, which gives a width-independent infinite-width limit). They are *not* "
    "the same functions at init: a standard weight has variance $1/(3\\,\\text{fan-in})$, an "
    "NTK-parameterized one effectively $\\sigma_w^2/\\text{fan-in} = 2/\\text{fan-in}$ (6× "
    "larger, with biases $\\sigma_b = 0.1$ instead of $U(\\pm 1/\\sqrt{\\text{fan-in}})$), and "
    "their gradients scale differently with width.\n"
    "- **Loss**: MSE on one-hot targets with ½·mean scaling, "
    "$L = \\tfrac12\\,\\mathrm{mean}_i\\,\\lVert f(x_i)-y_i\\rVert^2$; L1/L2 penalties act on the "
    "weights only. Epoch 0 is the initialization.")

st.subheader("Does the study hold?")
st.markdown(
    "The **Findings** page re-runs the experiments behind each claim of the study "
    "*Regularization effects on NTK spectrum* over 3 seeds, under SGD and Adam, and gives a "
    "verdict computed from the data — holds, holds only when …, does not hold, or "
    "inconclusive — with the statistic, the criterion and the evidence chart.")
st.page_link("pages/findings.py", label="Open the Findings", icon=":material/fact_check:")

st.subheader("How to read the pages")
st.markdown(
    "1. Set the experiment in the **sidebar** (width, samples, regularization, epochs, "
    "learning rate, …). It applies to every page, and the URL keeps it: copy the link to "
    "share the exact view.\n"
    "2. Each page asks one **question**, quotes the **claim** of the study it revisits, and "
    "runs the experiment needed to check it. Results are cached on disk, so a second visit "
    "is instant; a status box says whether results came from the cache or were computed.\n"
    "3. Charts have tooltips and log axes where values span decades; every chart has a "
    "**Download CSV** button with exactly the data plotted.\n"
    "4. Start small (the defaults take seconds on two CPU cores), then scale up.")

c = view.config
st.caption(f"Current sidebar: width {c.width}, n={c.n_train}, {c.epochs} epochs — "
           "pick a page in the sidebar to start.")
