"""Risk scoring that learns from feedback (contract: "Risk scoring").

Pure and synchronous, like `app.detect`, so `vigil replay` and the live fraud agent run the very
same code:

- `features`: the streaming features of one transaction, from the card's state (habits in daily
  buckets, kept in `CardState`), the rules' outcomes and the confirmed-fraud labels received so
  far per terminal/merchant and per card;
- `model`: an online logistic regression (standardised inputs, AdaGrad steps), with per-feature
  contributions for `top_features`;
- `learner`: delayed-label learning. Every scored transaction's features wait `label_delay` in
  event time; a `fraud` label makes a positive, a `legit` label or no fraud label within the
  delay a negative, and a fraud label that arrives after that is learned as a positive then;
- `scorer`: one transaction in, its `txn-scores` value and its alert (if any) out.

The learner is fed one ordered stream of examples and labels: in replay the file order, in a
worker the single-partition training topic every worker follows (`tables/model.py`). The same
stream in the same order gives the same model, bit for bit.
"""
