"""The contract's values and how input bytes become them: events, decoding with readable
reasons, intake per topic (key checks), dead letters, timestamps."""
