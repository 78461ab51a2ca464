"""The agent: the loop that measures, decides, acts and checks (`irqtune run`)."""
