"""LayerNorm backward in the "sum" form: dx = rstd / C * (C g - sum(g) - x_hat sum(g x_hat))."""


def layer_norm_backward(dy, x, gamma, mean, rstd):
    C = x.shape[-1]
    x_hat = (x - mean) * rstd
    g = dy * gamma
    dx = rstd / C * (C * g - g.sum(-1, keepdims=True) - x_hat * (g * x_hat).sum(-1, keepdims=True))
    rows = dy.reshape(-1, C)
    return dx, (rows * x_hat.reshape(-1, C)).sum(0), rows.sum(0)
