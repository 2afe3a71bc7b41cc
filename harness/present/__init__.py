"""What a person sees, drawn from stored data only: console table, figures, sentences, report.html."""
