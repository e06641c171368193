"""Loss-penalty methods (EWC, SI, ...): protect parameters important to past tasks."""
