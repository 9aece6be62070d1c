"""The text of the synthetic speech corpus (``tinygen.data.speech``): sentences written
for this project, ``sentences()`` -> a fixed list, the same on every machine.

Hand-written sentences first, then sentences from a small grammar (subject, verb,
object, place, time) expanded with a fixed seed, so the list is long enough for a
train / held-out split by sentence while the file stays short.
"""
import numpy as np

HANDWRITTEN = (
    "The kettle began to whistle just as the rain started.",
    "Please leave the blue folder on the second shelf.",
    "Seven old bicycles were chained to the railing outside the library.",
    "Nobody expected the river to freeze so early this winter.",
    "She counted the steps twice before she trusted the number.",
    "A small boat drifted past the lighthouse at dawn.",
    "We should have taken the earlier train to the coast.",
    "The museum closes at five on Sundays and holidays.",
    "His grandmother kept bees behind the orchard wall.",
    "Could you read the last paragraph once more, slowly?",
    "The orchestra tuned their instruments while the audience whispered.",
    "Thick fog rolled down the valley and hid the village.",
    "I found a silver key under the loose floorboard.",
    "The baker sells warm bread until the early afternoon.",
    "Forty seven swallows gathered on the telephone wire.",
    "They painted the fence yellow because the neighbours asked.",
    "Mathematics is easier when you draw a picture first.",
    "The storm knocked out the power for three whole days.",
    "Every answer raised two new questions for the committee.",
    "Our cat sleeps in the laundry basket whenever it is warm.",
    "The pilot announced a short delay because of strong winds.",
    "Quiet voices carried across the empty courtyard.",
    "Measure the flour carefully or the cake will collapse.",
    "A thousand lanterns floated slowly over the harbour.",
    "The old clock in the hallway runs four minutes fast.",
    "He whistled a tune that nobody else could remember.",
    "Fresh snow covered the tracks of the foxes overnight.",
    "The recipe calls for lemons, garlic and a pinch of salt.",
    "Which road leads to the castle on the hill?",
    "Dozens of children waited in line for the carousel.",
    "The scientist labelled every jar with the date and time.",
    "Strong coffee will not fix a broken schedule.",
    "Yesterday the ferry carried twelve cars and a tractor.",
    "The gardener trimmed the hedges into the shape of birds.",
    "Thunder rumbled far away beyond the mountains.",
    "Remember to water the tomatoes before you go to bed.",
    "The choir practised the same three bars for an hour.",
    "A curious goat climbed onto the roof of the shed.",
    "The bridge was closed while engineers checked the cables.",
    "Wool socks are the best gift for a cold country.",
    "Each morning the fisherman mended a different net.",
    "The letter arrived six weeks after it had been posted.",
    "Zebras and giraffes shared the shade of a single tree.",
    "The printer jammed again halfway through the report.",
    "Why does the moon look larger near the horizon?",
    "The team celebrated with pizza and loud music.",
    "Careful hands repaired the torn pages of the atlas.",
    "The wind turned the weather vane toward the north.",
    "My brother learned to juggle with three oranges.",
    "Bright copper pans hung above the kitchen stove.",
)

_SUBJECTS = ("the young doctor", "my neighbour", "a tired traveller", "the quiet student",
             "our teacher", "the old sailor", "a clever fox", "the farmer's daughter",
             "the night guard", "a famous painter", "the little robot", "my aunt Judith",
             "the postman", "a group of hikers", "the shy violinist", "the busy chef")
_VERBS = ("found", "carried", "painted", "forgot", "described", "repaired", "borrowed",
          "counted", "photographed", "hid", "sold", "cleaned", "measured", "wrapped",
          "dropped", "noticed")
_OBJECTS = ("a wooden chair", "the broken umbrella", "seven green bottles", "an old map",
            "the heavy suitcase", "a bowl of cherries", "the silver trumpet",
            "two paper kites", "a jar of honey", "the missing glove", "a basket of apples",
            "the purple notebook", "a pair of boots", "the tiny telescope",
            "a crate of potatoes", "the golden compass")
_PLACES = ("near the station", "behind the bakery", "in the garden", "at the market",
           "on the balcony", "beside the canal", "under the bridge", "in the attic",
           "inside the theatre", "across the square", "by the fountain",
           "at the edge of the forest", "in the waiting room", "on the top floor")
_TIMES = ("this morning", "last Tuesday", "after lunch", "before the storm",
          "late at night", "in early spring", "during the concert", "two days ago",
          "at half past nine", "on her birthday", "while it was snowing", "at sunrise")
_ENDINGS = ("", "", " and nobody noticed", " and then laughed", ", which surprised everyone",
            " without saying a word", " for the third time", " as quickly as possible")


def _grammar_sentences(n, seed):
    rng = np.random.default_rng(seed)
    seen, out = set(), []
    while len(out) < n:
        parts = [p[rng.integers(len(p))] for p in
                 (_SUBJECTS, _VERBS, _OBJECTS, _PLACES, _TIMES, _ENDINGS)]
        subject, verb, obj, place, time, ending = parts
        if rng.random() < 0.5:
            text = f"{subject} {verb} {obj} {place} {time}{ending}."
        else:
            text = f"{time}, {subject} {verb} {obj} {place}{ending}."
        text = text[0].upper() + text[1:]
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def sentences(n_generated=250, seed=16):
    """The hand-written sentences followed by ``n_generated`` grammar sentences (all
    distinct; the same list for the same arguments)."""
    return list(HANDWRITTEN) + _grammar_sentences(int(n_generated), seed)
