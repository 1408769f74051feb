"""Writes pipelines/data/ner_sample.conll: English sentences written for tfapp, tagged PER/ORG/LOC/MISC in IOB2.

    python pipelines/data/make_ner_sample.py pipelines/data/ner_sample.conll

Each sentence is one of the templates below with its slots filled from the name lists (seeded), so the file is
reproducible. People (24 × 23 first/last names) and organisations (20 × 9) are combined, so many names in the
test split never occur in training and the tagger must use context and word shape.
"""
import random
import sys

FIRST = ["Anna", "Marcus", "Li", "Fatima", "John", "Priya", "Tomas", "Greta", "Samuel", "Yuki", "Elena", "David",
         "Grace", "Hannah", "Omar", "Lucy", "Peter", "Martin", "Sofia", "Kwame", "Ingrid", "Rahul", "Chloe", "Ivan"]
LAST = ["Keller", "Webb", "Wei", "Noor", "Smith", "Raman", "Ortega", "Holm", "Okafor", "Tanaka", "Petrova", "Cohen",
        "Mensah", "Brandt", "Haddad", "Dubois", "Rossi", "Kowalski", "Nakamura", "Silva", "Novak", "Larsen", "Adeyemi"]
ROOTS = ["Acme", "Globex", "Northwind", "Helios", "Siemens", "Volvo", "Nestle", "Toyota", "Reuters", "Initech",
         "Vandelay", "Orion", "Apex", "Meridian", "Atlas", "Zenith", "Harbor", "Summit", "Pioneer", "Falcon"]
SUFFIXES = ["Corp", "Group", "Bank", "University", "Airlines", "Energy", "Motors", "Foundation", "United"]
NAMES = {
    "PER": [f"{f} {l}" for f in FIRST for l in LAST] + FIRST + LAST,
    "ORG": [f"{r} {s}" for r in ROOTS for s in SUFFIXES] + ROOTS + ["United Nations", "World Bank", "Red Cross",
            "European Commission", "Bank of England", "NASA", "Ajax", "Bayern Munich"],
    "LOC": ["Paris", "Berlin", "Nairobi", "Lake Geneva", "Tokyo", "Zurich", "Buenos Aires", "Texas", "Oslo", "Cairo",
            "Mumbai", "Canada", "Lisbon", "New York", "Kyoto", "Mount Kenya", "Brazil", "Sydney", "Lagos", "Quebec",
            "Vienna", "Peru", "Hanoi", "Dublin", "Cape Town", "Madrid", "Seoul", "Chile", "Prague", "Lima", "Bavaria",
            "Tasmania", "Accra", "Helsinki", "San Diego", "Ontario", "Kerala", "Sicily", "Bergen", "Manila"],
    "MISC": ["French", "German", "Olympic", "Japanese", "English", "Nobel Prize", "World Cup", "Brazilian",
             "Christmas", "Euro", "Kenyan", "Canadian", "Italian", "Tour de France", "Dutch", "Korean", "Ramadan",
             "Grammy", "Spanish", "Irish"],
}

TEMPLATES = [
    "{PER} visited {LOC} last week .",
    "{PER} works for {ORG} in {LOC} .",
    "{ORG} said on Monday that profits rose in {LOC} .",
    "The {MISC} team beat {ORG} 2 - 1 on Sunday .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "Shares of {ORG} fell 3 percent after the report .",
    "{PER} was born in {LOC} and moved to {LOC} as a child .",
    "Heavy rain closed roads across {LOC} on Tuesday .",
    "{ORG} will open a new office in {LOC} next year .",
    "The {MISC} government announced new taxes .",
    "{PER} won the {MISC} after a long career .",
    "Talks between {ORG} and {ORG} ended without a deal .",
    "Police in {LOC} arrested two men on Friday .",
    "{PER} told reporters that the plan would work .",
    "Tourists flock to {LOC} every summer .",
    "The match was played in {LOC} in front of 40,000 fans .",
    "{PER} and {PER} met in {LOC} to sign the agreement .",
    "{ORG} hired {PER} as its new chief executive .",
    "Prices in {LOC} rose faster than expected in March .",
    "The {MISC} writer {PER} published a new novel .",
    "According to {ORG} , exports to {LOC} doubled .",
    "{PER} scored twice for {ORG} on Saturday .",
    "A storm hit the coast of {LOC} overnight .",
    "The {MISC} market closed higher on Thursday .",
    "{ORG} denied the claims made by {PER} .",
    "Flights from {LOC} to {LOC} were cancelled .",
    "{PER} said the {MISC} economy was recovering .",
    "Engineers at {ORG} tested the new design in {LOC} .",
    "The river flooded several villages near {LOC} .",
    "{PER} thanked the fans after the {MISC} final .",
    "The report by {ORG} was published on Wednesday .",
    "Officials in {LOC} expect more visitors this year .",
    "{PER} , who lives in {LOC} , has three children .",
    "It was the first {MISC} title for {PER} .",
    "{ORG} bought a small company based in {LOC} .",
    "Many people celebrate {MISC} with their families .",
    "{PER} left {ORG} in June to start a business .",
    "The new bridge in {LOC} opened to traffic today .",
    "Students from {ORG} protested outside the building .",
    "She flew to {LOC} to meet {PER} .",
    "The company expects sales to grow next quarter .",
    "Nobody was hurt when the train stopped suddenly .",
    "The weather will stay dry until the weekend .",
    "{PER} signed a contract with {ORG} until 2028 .",
    "Exports of {MISC} wine reached a record high .",
]


def fill(template, rng):
    tokens, tags = [], []
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}"):
            kind = piece[1:-1]
            words = rng.choice(NAMES[kind]).split()
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        else:
            tokens.append(piece)
            tags.append("O")
    return tokens, tags


def main(path, num_sentences=400, seed=0):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("-DOCSTART- O\n\n")
        for _ in range(num_sentences):
            tokens, tags = fill(rng.choice(TEMPLATES), rng)
            f.writelines(f"{token} {tag}\n" for token, tag in zip(tokens, tags))
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
