"""A deterministic synthetic social world: users, a follow graph, posts and likes.

The lab's lessons need data that behaves like a real network, so the world is built from a few
well-known regularities rather than uniform noise:

* **Topics.** Eight topics (cooking, football, machine learning, ...). Each user has one or two
  favourites, writes about 85% of their posts on them and likes mostly posts on them. Post texts are
  natural English sentences assembled from each topic's subjects and details, so a sentence-embedding
  model places the posts of one topic close together.
* **A power-law follow graph with celebrities.** Every user has a Zipf popularity (rank r weighs
  ``1 / r``); ordinary follows are drawn in proportion to it, mostly among users sharing a topic. On
  top, a handful of celebrity accounts are followed by a large share of everyone, so their follower
  counts cross the celebrity threshold (default 200) and their posts are delivered by pull, not push.
  Most users end up with a few followers; the top accounts with hundreds or thousands.
* **Skewed activity.** Posting activity is Pareto distributed: a few prolific authors, many quiet ones.
  Posts are spread over the seven days before ``now``.
* **Engagement.** Each user likes a few posts, preferring recent ones, posts on their topics and posts
  by well-followed authors. Nobody likes their own post or the same post twice.

``generate_world`` is pure and deterministic: the same ``(size, seed, now)`` gives the same world, ids
included. Each phase draws from its own random stream, so changing how post texts are written does not
reshuffle the follow graph. ``load_world`` then writes the world through the real write path.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from typing import TYPE_CHECKING, TypeVar

from tqdm.auto import tqdm

from labcore.domain import utcnow

if TYPE_CHECKING:  # generating a world needs no database stack
    from labcore.write.posts import WritePath

T = TypeVar("T")


# --- Sizes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldSize:
    users: int
    posts: int
    mean_follows: float  # mean number of accounts a user follows
    min_follows: int  # nobody follows fewer (their home feed would be empty)
    like_rate: float  # mean number of likes a user gives
    celebrities: int  # accounts followed by a large share of everyone
    celebrity_reach: float  # share of users following the top celebrity; the next ones reach fewer


WORLD_SIZES: dict[str, WorldSize] = {
    "tiny": WorldSize(  # unit tests and quick demos
        users=30, posts=150, mean_follows=5, min_follows=2, like_rate=4, celebrities=1, celebrity_reach=0.6
    ),
    "small": WorldSize(  # the notebooks' default: a few celebrities above the threshold of 200
        users=300, posts=3_000, mean_follows=12, min_follows=3, like_rate=8, celebrities=3, celebrity_reach=0.95
    ),
    "medium": WorldSize(
        users=2_000, posts=20_000, mean_follows=20, min_follows=3, like_rate=10, celebrities=8, celebrity_reach=0.4
    ),
    "large": WorldSize(  # benchmarks
        users=10_000, posts=100_000, mean_follows=25, min_follows=3, like_rate=12, celebrities=20, celebrity_reach=0.25
    ),
}

# Shape of the world (shared by every size).
WINDOW = timedelta(days=7)  # posts are spread over the week before `now`
TOPIC_LOYALTY = 0.85  # share of a user's posts, and of their likes, on their favourite topics
FOLLOW_AFFINITY = 0.7  # share of ordinary follows drawn among users sharing a topic
SHARED_TOPIC_PULL = 1.3  # a celebrity's reach among users sharing its topic (x), and others (/)
CELEBRITY_DECAY = 0.9  # each further celebrity reaches this share of the previous one's audience
ZIPF_EXPONENT = 1.0  # popularity of the user at rank r is 1 / r**ZIPF_EXPONENT
ACTIVITY_PARETO_ALPHA = 2.0  # lower = more skewed posting activity
ACTIVITY_CAP = 30.0  # the most prolific author posts at most this many times the quietest
LIKE_HALF_LIFE = timedelta(days=2)  # a post two days older is half as likely to be liked


# --- The world -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedUser:
    user_id: str
    username: str
    display_name: str
    topics: tuple[str, ...]  # favourite topics, one or two


@dataclass(frozen=True)
class SeedFollow:
    follower_id: str
    followee_id: str


@dataclass(frozen=True)
class SeedPost:
    post_id: str
    author_id: str
    topic: str
    content: str
    created_at: datetime  # timezone-aware UTC


@dataclass(frozen=True)
class SeedLike:
    user_id: str
    post_id: str


@dataclass(frozen=True)
class World:
    size: str
    seed: int
    now: datetime
    users: list[SeedUser]
    follows: list[SeedFollow]
    posts: list[SeedPost]  # ascending created_at
    likes: list[SeedLike]

    def follower_counts(self) -> dict[str, int]:
        """Followers per user id (every user present, zero included)."""
        counts = {user.user_id: 0 for user in self.users}
        for edge in self.follows:
            counts[edge.followee_id] += 1
        return counts


# --- Topics and post texts -------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicVocabulary:
    """What posts on one topic are made of: ``template.format(subject=...)`` then a detail sentence."""

    subjects: tuple[str, ...]  # noun phrases that are unmistakably about the topic
    templates: tuple[str, ...]  # one sentence with a ``{subject}`` slot
    details: tuple[str, ...]  # standalone sentences on the topic
    reactions: tuple[str, ...]  # short on-topic sign-offs
    hashtags: tuple[str, ...]


TOPICS: dict[str, TopicVocabulary] = {
    "cooking": TopicVocabulary(
        subjects=(
            "a mushroom risotto", "homemade sourdough bread", "a Thai green curry", "slow-braised short ribs",
            "fresh pasta from scratch", "a lemon drizzle cake", "a pan of shakshuka", "a pot of chicken stock",
            "miso-glazed salmon", "a vegetable lasagne", "homemade dumplings", "a classic French omelette",
            "roast chicken with garlic butter", "a spicy lentil dal", "cinnamon buns",
        ),
        templates=(
            "Made {subject} for dinner tonight.", "Third attempt at {subject} and it finally came out right.",
            "Nothing beats {subject} on a rainy Sunday.", "Tried a new recipe for {subject} today.",
            "Cooking {subject} for friends this weekend.", "My kitchen smells amazing thanks to {subject}.",
            "Meal prep today: {subject}.", "Still learning how to cook {subject} properly.",
        ),
        details=(
            "The secret was browning the onions slowly and seasoning with plenty of salt.",
            "Next time I will add more garlic and a squeeze of lemon.",
            "Letting the dough rest overnight made a huge difference.",
            "A cast iron pan and a hot oven really are worth it.",
            "Fresh herbs from the market made the whole dish.",
            "I finally used my homemade stock instead of a cube.",
            "Toasting the spices first brought out so much flavour.",
            "The recipe said forty minutes but it needed a full hour in the oven.",
            "Butter, patience and a wooden spoon are all you need.",
            "Served it with crusty bread and a simple green salad.",
            "The leftovers might be even better for lunch tomorrow.",
            "I burned the first batch but the second one was delicious.",
        ),
        reactions=(
            "Pure comfort food.", "Chef's kiss.", "My family cleared their plates.", "Definitely cooking it again.",
            "Recipe in the replies.", "Worth every minute at the stove.",
        ),
        hashtags=("#cooking", "#homecooking", "#recipe"),
    ),
    "football": TopicVocabulary(
        subjects=(
            "the derby", "Saturday's match", "our new striker", "the title race", "the penalty shootout",
            "the Champions League draw", "our back four", "the transfer window", "the referee's decisions",
            "the manager's tactics", "that stoppage-time winner", "the relegation battle",
            "our young goalkeeper", "the away end at the stadium", "the midfield press",
        ),
        templates=(
            "Still buzzing about {subject}.", "Can we talk about {subject} for a second?",
            "Watching the replays and still thinking about {subject}.", "Nobody is talking enough about {subject}.",
            "Big week for the club, all eyes on {subject}.",
            "Just got home from the ground and I'm still thinking about {subject}.",
            "Hot take about {subject} incoming.", "The pundits completely misread {subject}.",
        ),
        details=(
            "The second half was end-to-end football and the crowd never stopped singing.",
            "We need a proper defensive midfielder before the transfer deadline.",
            "Three points is three points, but the finishing has to improve.",
            "That through ball in the ninetieth minute was pure class.",
            "The coach has to stop playing a high line against fast wingers.",
            "Our keeper kept us in the game with two brilliant saves.",
            "VAR took forever again and killed the atmosphere in the stadium.",
            "If we win the next two league games we are back in the top four.",
            "The pressing from the front was the best I've seen all season.",
            "Clean sheet, two goals and a packed stadium, what a night.",
            "The captain's header from the corner was unstoppable.",
            "Injuries in defence are really hurting the team this season.",
        ),
        reactions=(
            "What a game.", "Up the lads.", "Season ticket worth every penny.", "Can't wait for the next match.",
            "Still hoarse from singing.", "Football is the best sport in the world.",
        ),
        hashtags=("#football", "#matchday", "#soccer"),
    ),
    "machine learning": TopicVocabulary(
        subjects=(
            "transformer models", "our model training pipeline", "gradient descent", "a new embedding model",
            "overfitting on small datasets", "the validation loss curve", "hyperparameter tuning",
            "fine-tuning a language model", "feature engineering", "a recommendation model",
            "batch normalization", "contrastive learning", "model evaluation metrics",
            "a neural network from scratch", "retrieval-augmented generation",
        ),
        templates=(
            "Spent the whole day digging into {subject}.", "Finally wrote up my notes on {subject}.",
            "Hot take: most people misunderstand {subject}.", "Reading a great paper about {subject} this morning.",
            "Our reading group spent an hour on {subject}.",
            "Explaining {subject} to new engineers is harder than it looks.",
            "Week three of wrestling with {subject}.", "Gave a short talk on {subject} at the ML meetup.",
        ),
        details=(
            "The validation accuracy jumped four points after we cleaned the training data.",
            "Always plot your loss curves before trusting the final metric.",
            "A simple logistic regression baseline was surprisingly hard to beat.",
            "Lowering the learning rate fixed the exploding gradients.",
            "The GPU bill for that training run was painful.",
            "Data leakage between the train and test split explained the suspicious results.",
            "Embeddings plus a nearest-neighbour search worked better than the fancy model.",
            "We need better offline evaluation before running another A/B test.",
            "Regularization and more data beat a bigger network every time.",
            "The model overfits after five epochs, so early stopping it is.",
            "Feature importance showed the model mostly learned recency.",
            "Reproducible experiments need fixed random seeds and versioned datasets.",
        ),
        reactions=(
            "The data always wins.", "Back to the Jupyter notebooks.", "Models are humbling.",
            "Paper link in the replies.", "Ship it once the metrics hold.", "Always check your baselines.",
        ),
        hashtags=("#MachineLearning", "#ML", "#DeepLearning"),
    ),
    "travel": TopicVocabulary(
        subjects=(
            "a long weekend in Lisbon", "a night train across the Alps", "the Scottish Highlands",
            "Kyoto in autumn", "a city break in Barcelona", "backpacking through Vietnam", "the Amalfi coast",
            "a road trip around Iceland", "Mexico City", "the fjords of Norway", "island hopping in Greece",
            "the souks of Marrakech", "the Camino de Santiago", "a layover in Istanbul",
            "the national parks of Utah",
        ),
        templates=(
            "Just got back from {subject}.", "Planning my next trip: {subject}.",
            "Can't recommend {subject} enough.", "Packing my backpack for {subject}.",
            "Travel diary, day four: {subject}.", "Booked the flights for {subject} at last.",
            "Photos and tips from {subject} coming soon.", "Best travel decision of the year: {subject}.",
        ),
        details=(
            "The hostel was cheap, friendly and right next to the old town.",
            "Local buses and trains were easier than renting a car.",
            "Get up before sunrise to beat the crowds of tourists.",
            "The street food alone was worth the long flight.",
            "Pack light, you will walk far more than you expect.",
            "Our guide showed us a hidden viewpoint over the whole valley.",
            "Learning a few words of the language made the locals so welcoming.",
            "Travel insurance saved us when the flight got cancelled.",
            "The passport queue at the airport took two hours, so plan for it.",
            "We stayed in a tiny guesthouse run by a lovely family.",
            "Three days was not nearly enough to see everything.",
            "Hiking to the coast at sunset was the highlight of the trip.",
        ),
        reactions=(
            "Already planning the next trip.", "Wanderlust is real.", "Add it to your bucket list.",
            "The jet lag was worth it.", "Passport stamps never get old.", "Cannot wait to go back.",
        ),
        hashtags=("#travel", "#wanderlust", "#travelgram"),
    ),
    "photography": TopicVocabulary(
        subjects=(
            "golden hour portraits", "portraits with my new 35mm prime lens", "long exposure shots of the city",
            "street photography in the old town", "a roll of black and white film", "astrophotography",
            "the Milky Way over the lake", "black and white landscapes", "macro shots of insects",
            "portraits on a vintage rangefinder camera", "wedding photography", "drone photography over the coast",
            "night photography in the rain", "a minimalist photo series", "wildlife photography at dawn",
        ),
        templates=(
            "Out with the camera this evening for {subject}.", "Experimenting with {subject} lately.",
            "New gallery up: {subject}.", "Anyone else obsessed with {subject}?",
            "Spent the weekend on {subject}.", "Learning so much from my project on {subject}.",
            "Finally happy with my results on {subject}.", "Sharing a few frames from {subject}.",
        ),
        details=(
            "Shot at f/1.8 with a slow shutter speed and no flash.",
            "Shooting in RAW gave me so much more room when editing.",
            "A sturdy tripod made all the difference for the long exposures.",
            "The light was soft and golden for only about ten minutes.",
            "I kept the ISO low to avoid noise in the shadows.",
            "Composition matters more than the camera, rule of thirds every time.",
            "Manual focus was tricky but the sharpness is worth it.",
            "I edited the colours lightly and kept the film grain.",
            "Waiting for the right moment is half of street photography.",
            "The histogram saved me from blowing out the highlights.",
            "A polarizing filter made the sky and the water pop.",
            "Printed the best shot and it looks great framed on the wall.",
        ),
        reactions=(
            "Light is everything.", "Prints coming soon.", "Chasing the light again tomorrow.",
            "Camera bag packed for next weekend.", "Full-resolution photos on my portfolio.", "Keep shooting.",
        ),
        hashtags=("#photography", "#photooftheday", "#filmphotography"),
    ),
    "music": TopicVocabulary(
        subjects=(
            "the new album from my favourite band", "a jazz trio I saw downtown", "my grandfather's vinyl records",
            "the summer festival headliners", "an old soul record", "a Chopin piano concerto",
            "the bass line in that new single", "the live session on the radio", "a lo-fi playlist for late nights",
            "the orchestra's recording of Beethoven's ninth", "that indie band from the festival",
            "a bossa nova album from Brazil", "the soundtrack of my favourite film",
            "a hip-hop mixtape from the nineties", "the acoustic version of that song",
        ),
        templates=(
            "Can't stop listening to {subject}.", "Tonight's soundtrack: {subject}.",
            "Had a wonderful evening with {subject}.", "Spending the weekend with {subject} on repeat.",
            "Deep dive into {subject} this week.", "If you need new music, try {subject}.",
            "Still humming along to {subject}.", "Nothing lifts my mood like {subject}.",
        ),
        details=(
            "The drummer kept a perfect groove for the whole set.",
            "That chorus has been stuck in my head for three days.",
            "Practising scales every day is finally paying off.",
            "The vocals on the second song gave me goosebumps.",
            "The sound mixing at the venue was crystal clear.",
            "Headphones on, volume up, and the rest of the world disappears.",
            "The melody is simple but the chord progression is beautiful.",
            "I learned the whole riff by ear after listening on repeat.",
            "Seeing the band live is always better than the studio recording.",
            "The setlist mixed their old hits with the new songs perfectly.",
            "Tuning the guitar before the gig took longer than the gig.",
            "The album sounds warmer on vinyl than on streaming.",
        ),
        reactions=(
            "Turn it up.", "On repeat all week.", "Music heals.", "Tickets for the next gig are booked.",
            "Pure goosebumps.", "Going to practise again tonight.",
        ),
        hashtags=("#music", "#nowplaying", "#livemusic"),
    ),
    "startups": TopicVocabulary(
        subjects=(
            "our seed round", "finding product-market fit", "hiring our first engineer", "the pitch deck",
            "customer discovery calls", "our pricing page", "the launch on Product Hunt",
            "churn in our first customer cohort", "a pivot to B2B", "bootstrapping versus venture capital",
            "our MVP", "the accelerator demo day", "pitching to investors", "growth experiments",
            "our first paying customer",
        ),
        templates=(
            "Founder update: {subject}.", "Lessons learned from {subject}.",
            "Spent the week obsessing over {subject}.", "Nobody warns you how hard {subject} is.",
            "Quick thread on {subject}.", "Our small team talked for hours about {subject}.",
            "Advice for first-time founders about {subject}.", "Still figuring out {subject}.",
        ),
        details=(
            "Talk to your customers every single week, not just at launch.",
            "Our monthly recurring revenue grew twelve percent this month.",
            "Investors cared more about retention than about our user count.",
            "We cut the roadmap in half and shipped faster.",
            "Runway is eighteen months, so the startup can focus on growth.",
            "The best early hires were generalists who loved the problem.",
            "Charging from day one told us who really needed the product.",
            "Every founder I know underestimated how long sales cycles are.",
            "A tiny landing page validated the idea before we wrote any code.",
            "Our cofounder handled the legal paperwork and saved us weeks.",
            "Burn rate matters more than the valuation headline.",
            "We almost ran out of cash before the term sheet arrived.",
        ),
        reactions=(
            "Building in public.", "Onwards to the next milestone.", "Founder life.", "Back to shipping.",
            "Hiring soon, DMs open.", "Customers first, always.",
        ),
        hashtags=("#startups", "#founders", "#buildinpublic"),
    ),
    "climate": TopicVocabulary(
        subjects=(
            "the new solar farm", "heat pumps", "the latest IPCC climate report", "carbon emissions from aviation",
            "our city's new cycling lanes", "rooftop solar panels", "the heatwave this summer", "electric buses",
            "rewilding projects", "the offshore wind farm", "plastic pollution in the oceans",
            "the local climate strike", "sea level rise", "cutting meat to lower emissions",
            "the carbon tax debate",
        ),
        templates=(
            "Reading about {subject} this morning.", "Big news about {subject} today.",
            "Why is nobody talking about {subject}?", "Went to a town hall meeting on {subject}.",
            "A thread on {subject} and what it means for us.", "Learning a lot about {subject} lately.",
            "My thoughts on {subject}.", "Can we please take {subject} seriously?",
        ),
        details=(
            "Renewable energy is now cheaper than coal in most of the world.",
            "Every tenth of a degree of global warming matters.",
            "Cutting emissions this decade is the only way to hit the climate targets.",
            "Our energy bill dropped a lot after we insulated the house.",
            "Cities need better public transport, not wider roads.",
            "Protecting forests and wetlands stores huge amounts of carbon.",
            "The drought is hurting farmers and raising food prices.",
            "Scientists have warned about these extreme weather events for decades.",
            "Switching to a green electricity tariff took five minutes.",
            "Fossil fuel subsidies are still far too large.",
            "Local action on climate change adds up when everyone joins in.",
            "Wildfire smoke kept the kids inside all week again.",
        ),
        reactions=(
            "The planet can't wait.", "Small steps add up.", "Act now on climate.", "Hope is a choice.",
            "The science is clear.", "Clean energy is the future.",
        ),
        hashtags=("#climate", "#ClimateAction", "#renewables"),
    ),
}
TOPIC_NAMES: tuple[str, ...] = tuple(TOPICS)

# Topic-neutral framing: short enough that the topic sentences dominate a post's embedding.
OPENERS = (
    "Quick one.", "Okay, hear me out.", "Small win today.", "Long week, but this made it better.",
    "Honest thoughts.", "Update:", "Morning thought.", "Weekend mood.",
)
CLOSERS = (
    "Thoughts?", "Anyone else?", "Would love your tips.", "More soon.", "Happy to chat about it.",
    "Let me know what you think.",
)


def post_text(topic: str, rng: random.Random) -> str:
    """One natural-sounding post on ``topic``: a subject sentence, one or two details, optional framing.

    Each part is optional or chosen independently, so texts rarely repeat exactly even in ``large``.
    """
    vocab = TOPICS[topic]
    parts = [rng.choice(vocab.templates).format(subject=rng.choice(vocab.subjects))]
    parts += rng.sample(vocab.details, rng.choice((1, 2)))
    for chance, options in ((0.5, vocab.reactions), (0.35, CLOSERS), (0.35, vocab.hashtags)):
        if rng.random() < chance:
            parts.append(rng.choice(options))
    if rng.random() < 0.35:
        parts.insert(0, rng.choice(OPENERS))
    return " ".join(parts)


# --- Generation ------------------------------------------------------------------------------------


def generate_world(size: str, seed: int, now: datetime | None = None) -> World:
    """Build the world of ``size`` (a key of ``WORLD_SIZES``); pure and deterministic.

    ``now`` anchors the post timestamps (the week before it); it defaults to the current second, so
    pass it explicitly when two calls must give identical worlds.
    """
    if size not in WORLD_SIZES:
        raise ValueError(f"unknown world size {size!r}; choose one of {', '.join(WORLD_SIZES)}")
    spec = WORLD_SIZES[size]
    now = now or utcnow().replace(microsecond=0)

    users = _make_users(spec.users, _stream(seed, "users"))
    edges = _make_follows(users, spec, _stream(seed, "follows"))
    followers = [0] * len(users)
    for _, followee in edges:
        followers[followee] += 1
    posts = _make_posts(users, spec, now, _stream(seed, "posts"))
    likes = _make_likes(users, posts, followers, spec, now, _stream(seed, "likes"))

    ids = [user.user_id for user in users]
    return World(
        size=size,
        seed=seed,
        now=now,
        users=users,
        follows=[SeedFollow(ids[a], ids[b]) for a, b in edges],
        posts=posts,
        likes=[SeedLike(ids[u], posts[p].post_id) for u, p in likes],
    )


def _stream(seed: int, phase: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, independent of PYTHONHASHSEED.
    return random.Random(f"{seed}/{phase}")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _Sampler:
    """Weighted draws (with replacement) from a fixed population, O(log n) each."""

    def __init__(self, population: Sequence[int], weights: Iterable[float]) -> None:
        self.population = list(population)
        self.cum_weights = list(accumulate(weights))

    def draw(self, rng: random.Random) -> int:
        return rng.choices(self.population, cum_weights=self.cum_weights)[0]


# Users ---------------------------------------------------------------------------------------------

FIRST_NAMES = (
    "Maya", "Liam", "Aisha", "Noah", "Sofia", "Kenji", "Amara", "Lucas", "Priya", "Mateo", "Chloe", "Omar",
    "Elena", "Tariq", "Hannah", "Diego", "Yuki", "Finn", "Zara", "Ravi", "Ingrid", "Kwame", "Lea", "Marco",
    "Nina", "Samuel", "Mei", "Jonas", "Fatima", "Leo", "Isabel", "Arjun", "Clara", "Tomas", "Ama", "Felix",
    "Rosa", "Hugo", "Layla", "Emil", "Ana", "Kofi", "Julia", "Malik", "Sara", "Oscar", "Lina", "Ivan",
)
LAST_NAMES = (
    "Okafor", "Larsen", "Khan", "Silva", "Tanaka", "Novak", "Mensah", "Rossi", "Patel", "Garcia", "Dubois",
    "Haddad", "Petrov", "Nguyen", "Schmidt", "Costa", "Sato", "Murphy", "Ali", "Kowalski", "Berg", "Osei",
    "Moreau", "Fischer", "Lopez", "Chen", "Andersen", "Ibrahim", "Romano", "Kim", "Walsh", "Ahmed",
    "Jansen", "Suzuki", "Reyes", "Bauer", "Owusu", "Laurent", "Weber", "Santos",
)


def _make_users(n: int, rng: random.Random) -> list[SeedUser]:
    taken: set[str] = set()
    users = []
    for _ in range(n):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        username = _unique_username(first, last, taken, rng)
        taken.add(username)
        topics = tuple(rng.sample(TOPIC_NAMES, 1 if rng.random() < 0.6 else 2))
        users.append(SeedUser(_uuid(rng), username, f"{first} {last}", topics))
    return users


def _unique_username(first: str, last: str, taken: set[str], rng: random.Random) -> str:
    """A handle in one of a few common styles; digits are appended until it is free."""
    style = rng.randrange(4)
    base = (f"{first}.{last}", f"{first}_{last}", f"{first[0]}{last}", f"{last}.{first[0]}")[style].lower()
    username = base
    while username in taken:
        username = f"{base}{rng.randrange(10, 1000)}"
    return username


# Follow graph --------------------------------------------------------------------------------------


def _make_follows(users: list[SeedUser], spec: WorldSize, rng: random.Random) -> list[tuple[int, int]]:
    """Directed ``(follower, followee)`` index pairs: celebrity audiences, then Zipf-popular follows."""
    n = len(users)
    ranking = rng.sample(range(n), n)  # ranking[r] is the user at popularity rank r
    popularity = [0.0] * n
    for rank, user in enumerate(ranking):
        popularity[user] = 1.0 / (rank + 1) ** ZIPF_EXPONENT

    following: list[dict[int, None]] = [{} for _ in range(n)]  # insertion-ordered sets
    # The celebrities are the top popularity ranks: besides their audience they also attract the
    # most ordinary follows, as the best-known accounts do.
    for k, celebrity in enumerate(ranking[: spec.celebrities]):
        _add_audience(celebrity, spec.celebrity_reach * CELEBRITY_DECAY**k, users, following, rng)

    everyone = _Sampler(range(n), popularity)
    by_topic = {
        topic: _Sampler(members, (popularity[u] for u in members))
        for topic in TOPIC_NAMES
        if (members := [u for u in range(n) if topic in users[u].topics])
    }
    for follower in range(n):
        pools = [by_topic[topic] for topic in users[follower].topics]
        target = min(n - 1, spec.min_follows + round(rng.expovariate(1 / (spec.mean_follows - spec.min_follows))))
        _follow_popular(follower, target, pools, everyone, following[follower], rng)
        _follow_anyone(follower, spec.min_follows, n, following[follower], rng)
    return [(follower, followee) for follower in range(n) for followee in following[follower]]


def _add_audience(
    celebrity: int, reach: float, users: list[SeedUser], following: list[dict[int, None]], rng: random.Random
) -> None:
    """Each user follows the celebrity with probability ``reach``, higher when they share a topic."""
    topics = set(users[celebrity].topics)
    for user, person in enumerate(users):
        if user == celebrity:
            continue
        shared = not topics.isdisjoint(person.topics)
        chance = reach * SHARED_TOPIC_PULL if shared else reach / SHARED_TOPIC_PULL
        if rng.random() < chance:
            following[user][celebrity] = None


def _follow_popular(
    follower: int,
    target: int,
    topic_pools: list[_Sampler],
    everyone: _Sampler,
    followees: dict[int, None],
    rng: random.Random,
) -> None:
    """Draw followees by popularity, mostly among users sharing a topic, until ``target`` is reached."""
    # Popular accounts get drawn again and again once followed: bound the retries, the world is
    # still fine if a user ends up with slightly fewer follows than drawn.
    for _ in range(20 * target):
        if len(followees) >= target:
            return
        pool = rng.choice(topic_pools) if rng.random() < FOLLOW_AFFINITY else everyone
        followee = pool.draw(rng)
        if followee != follower:
            followees[followee] = None


def _follow_anyone(follower: int, minimum: int, n: int, followees: dict[int, None], rng: random.Random) -> None:
    """Top up to ``minimum`` follows with uniformly random accounts (nobody's feed stays empty)."""
    while len(followees) < min(minimum, n - 1):
        followee = rng.randrange(n)
        if followee != follower:
            followees[followee] = None


# Posts ---------------------------------------------------------------------------------------------


def _make_posts(users: list[SeedUser], spec: WorldSize, now: datetime, rng: random.Random) -> list[SeedPost]:
    activity = _Sampler(range(len(users)), (_activity(rng) for _ in users))
    window_ms = int(WINDOW.total_seconds() * 1000)
    posts = []
    for _ in range(spec.posts):
        author = users[activity.draw(rng)]
        topic = _post_topic(author.topics, rng)
        # Whole milliseconds: the precision of epoch scores in mailboxes and events.
        created_at = now - timedelta(milliseconds=rng.randrange(1, window_ms))
        posts.append(SeedPost(_uuid(rng), author.user_id, topic, post_text(topic, rng), created_at))
    posts.sort(key=lambda post: post.created_at)
    return posts


def _activity(rng: random.Random) -> float:
    # Capped so one freak draw cannot write a tenth of a small world's posts.
    return min(ACTIVITY_CAP, rng.paretovariate(ACTIVITY_PARETO_ALPHA))


def _post_topic(favourites: tuple[str, ...], rng: random.Random) -> str:
    if rng.random() < TOPIC_LOYALTY:
        return rng.choice(favourites)
    return rng.choice([topic for topic in TOPIC_NAMES if topic not in favourites])


# Likes ---------------------------------------------------------------------------------------------


def _make_likes(
    users: list[SeedUser],
    posts: list[SeedPost],
    followers: list[int],
    spec: WorldSize,
    now: datetime,
    rng: random.Random,
) -> list[tuple[int, int]]:
    """``(user, post)`` index pairs: recent, on-topic posts by well-followed authors are liked most."""
    author_index = {user.user_id: i for i, user in enumerate(users)}
    authors = [author_index[post.author_id] for post in posts]
    appeal = [_like_appeal(post, followers[author], now) for post, author in zip(posts, authors)]
    everything = _Sampler(range(len(posts)), appeal)
    by_topic = {
        topic: _Sampler(members, (appeal[p] for p in members))
        for topic in TOPIC_NAMES
        if (members := [p for p, post in enumerate(posts) if post.topic == topic])
    }

    likes = []
    for user, person in enumerate(users):
        pools = [by_topic[topic] for topic in person.topics if topic in by_topic]
        liked: dict[int, None] = {}
        wanted = max(1, round(rng.expovariate(1 / spec.like_rate)))
        for _ in range(20 * wanted):
            if len(liked) >= wanted:
                break
            pool = rng.choice(pools) if pools and rng.random() < TOPIC_LOYALTY else everything
            post = pool.draw(rng)
            if authors[post] != user:
                liked[post] = None
        likes.extend((user, post) for post in liked)
    return likes


def _like_appeal(post: SeedPost, author_followers: int, now: datetime) -> float:
    recency = 0.5 ** ((now - post.created_at) / LIKE_HALF_LIFE)
    return recency * math.sqrt(1 + author_followers)


# --- Loading ---------------------------------------------------------------------------------------


def load_world(world: World, writes: WritePath, progress: bool = True) -> dict[str, int]:
    """Write ``world`` through the real write path; returns how many rows of each kind were created.

    The order matters: all follows are in place before the first post, so each post's delivery
    (push or celebrity pull) is decided from its author's final follower count. Posts are written
    oldest first with their generated ids and timestamps. Follows, posts and likes go in batches
    (``follow_many``, ``create_posts``, ``like_many``): one transaction per chunk of 1,000, not per
    row — per-row writes took 108 s for the medium world and kept ``large`` out of the benchmark.
    """
    from labcore.write.posts import PostDraft  # here: generating a world needs no database stack

    for user in _bar(world.users, "users", progress):
        writes.create_user(user.username, user.display_name, user_id=user.user_id)
    follows = sum(
        len(writes.follow_many([(e.follower_id, e.followee_id) for e in chunk]))
        for chunk in _chunked(world.follows, "follows", progress)
    )
    posts = sorted(world.posts, key=lambda post: post.created_at)
    for chunk in _chunked(posts, "posts", progress):
        writes.create_posts(
            PostDraft(post.author_id, post.content, post_id=post.post_id, created_at=post.created_at)
            for post in chunk
        )
    likes = sum(
        len(writes.like_many([(like.user_id, like.post_id) for like in chunk]))
        for chunk in _chunked(world.likes, "likes", progress)
    )
    return {"users": len(world.users), "follows": follows, "posts": len(posts), "likes": likes}


def _chunked(items: Sequence[T], phase: str, progress: bool, size: int = 1000) -> Iterator[Sequence[T]]:
    """``items`` in chunks of ``size``, with a progress bar counting items (not chunks)."""
    with tqdm(total=len(items), desc=phase, unit=phase.rstrip("s"), disable=not progress) as bar:
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            yield chunk
            bar.update(len(chunk))


def _bar(items: Sequence[T], phase: str, progress: bool) -> Iterable[T]:
    return tqdm(items, desc=phase, unit=phase.rstrip("s"), disable=not progress)
