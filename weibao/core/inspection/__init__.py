"""The daily inspection's vocabulary: hidden-danger checks as data, findings and report model, the two languages."""
