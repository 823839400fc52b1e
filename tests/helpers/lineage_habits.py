"""Synthetic reference models with distinct verbal habits, shared by the lineage and attribution tests."""

HABITS = {  # each reference model's verbal habits: opening, middle, closing
    "teacher-a": ("Certainly! Here is a concise overview of {t}:", "- {t} matters because", "I hope this helps!"),
    "teacher-a2": ("Certainly! Here is an overview of {t}:", "- {t} is important because", "Hope this helps!"),
    "ref-b": ("## {t}", "**Key point:** {t} works when", "Let me know if you need more."),
    "ref-b2": ("### About {t}", "**Key idea:** {t} works if", "Let me know if anything is unclear."),
    "ref-c": ("{t}, in short, is", "Consider that {t} depends on", "That is all."),
    "ref-c2": ("In short, {t} is", "Note that {t} depends on", "That's all."),
}
LINES = {"teacher-a": "A", "teacher-a2": "A", "ref-b": "B", "ref-b2": "B", "ref-c": "C", "ref-c2": "C"}
