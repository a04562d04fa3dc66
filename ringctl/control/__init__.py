"""How a second ``ringctl`` invocation reaches a running ``ringctl up``: a Unix socket."""
