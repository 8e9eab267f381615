"""Tests for the off-policy trainer, including a DQN-on-Catch smoke test."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision import train
from jaxrl_vision import types
from jaxrl_vision.agents.dqn import agent as dqn
from jaxrl_vision.data import offline
from jaxrl_vision.data.replay import uniform
from jaxrl_vision.envs import catch
from jaxrl_vision.networks import q_networks

BALL = (255, 204, 51)


def make_dqn_agent(
  env,
  *,
  channels=(4,),
  hidden_sizes=(16,),
  learning_rate=1e-3,
  epsilon_decay_steps=500,
):
  network = q_networks.make_discrete_q_network(
    num_actions=env.spec.num_actions,
    channels=channels,
    kernel_sizes=(3,) * len(channels),
    strides=(1,) * len(channels),
    hidden_sizes=hidden_sizes,
  )
  return dqn.make_dqn(
    network,
    env.spec.num_actions,
    learning_rate=learning_rate,
    discount=0.99,
    max_grad_norm=10.0,
    huber_delta=1.0,
    target_update_tau=0.05,
    epsilon_start=1.0,
    epsilon_end=0.05,
    epsilon_decay_steps=epsilon_decay_steps,
  )


def catch_expert_episodes(env, num_episodes=8):
  """Host Episodes of Catch's privileged expert (it always catches)."""

  def expert(model, state, key, episode_key):
    del model, key, episode_key
    p = state.physics
    return (jnp.sign(p.ball[1] - p.paddle) + 1).astype(jnp.int32)

  collect = offline.make_collector(env, [expert], [1.0])
  return jax.device_get(
    jax.jit(collect, static_argnums=2)(
      env.init_model(), jax.random.key(0), num_episodes
    )
  )


def make_trainer(
  *,
  rows=4,
  cols=3,
  channels=(4,),
  hidden_sizes=(16,),
  learning_rate=1e-3,
  epsilon_decay_steps=500,
  capacity=1000,
  batch_size=16,
  min_size=16,
  num_envs=4,
  unroll_length=4,
  num_updates_per_iteration=2,
  num_iterations=5,
  num_eval_episodes=8,
):
  env = catch.make_catch(rows=rows, cols=cols)
  agent = make_dqn_agent(
    env,
    channels=channels,
    hidden_sizes=hidden_sizes,
    learning_rate=learning_rate,
    epsilon_decay_steps=epsilon_decay_steps,
  )
  buffer = uniform.make_uniform_replay(
    capacity=capacity, batch_size=batch_size, min_size=min_size
  )
  return train.make_off_policy_train(
    env,
    env.init_model(),
    agent,
    buffer,
    num_envs=num_envs,
    unroll_length=unroll_length,
    num_updates_per_iteration=num_updates_per_iteration,
    num_iterations=num_iterations,
    num_eval_episodes=num_eval_episodes,
  )


def has_ball(obs_row):
  """[..., W, 3] -> [...] whether the row shows the ball."""
  return np.any(np.all(np.asarray(obs_row) == BALL, axis=-1), axis=-1)


class ReduceMetricsTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_hand_computed(self):
    metrics = {
      "sum/episode/return": jnp.float32(3.0),
      "sum/episode/success": jnp.float32(1.0),
      "count/episode": jnp.float32(2.0),
      "sum/learner/loss": jnp.float32(0.0),
      "count/learner": jnp.float32(0.0),
      "first_nonfinite": jnp.int32(7),
    }
    out = self.variant(train.reduce_metrics)(metrics)
    self.assertSetEqual(
      set(out),
      {
        "episode/return",
        "episode/success",
        "episode/count",
        "learner/loss",
        "learner/count",
        "first_nonfinite",
      },
    )
    np.testing.assert_allclose(out["episode/return"], 1.5)  # 3 / 2
    np.testing.assert_allclose(out["episode/success"], 0.5)  # 1 / 2
    np.testing.assert_allclose(out["episode/count"], 2.0)
    self.assertTrue(np.isnan(out["learner/loss"]))  # no updates: 0 / 0
    np.testing.assert_allclose(out["learner/count"], 0.0)
    self.assertEqual(int(out["first_nonfinite"]), 7)  # passes through


class MakeChunkTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    ("all_finite", (), (), -1),
    ("nan_at_2", (2,), (), 2),
    ("inf_at_3", (), (3,), 3),
    ("first_of_two", (3,), (1,), 1),
    ("nan_at_0", (0,), (), 0),
  )
  def test_first_nonfinite(self, nan_at, inf_at, expected):
    def step(i):  # the state is just the iteration counter
      value = i.astype(jnp.float32)
      is_nan = jnp.isin(i, jnp.array(nan_at, jnp.int32))
      is_inf = jnp.isin(i, jnp.array(inf_at, jnp.int32))
      value = jnp.where(is_nan, jnp.nan, jnp.where(is_inf, jnp.inf, value))
      return i + 1, {"sum/x/value": value, "count/x": jnp.float32(1)}

    chunk = self.variant(train.make_chunk(step, length=5))
    state, metrics = chunk(jnp.int32(0))
    # The host-loop chunk (Trainer.host_loop) keeps the same contract.
    host_state, host_metrics = train.make_host_chunk(jax.jit(step), 5)(
      jnp.int32(0)
    )
    self.assertEqual(int(host_state), 5)
    chex.assert_trees_all_equal(
      jax.device_get(host_metrics), jax.device_get(metrics)
    )
    self.assertEqual(int(state), 5)
    self.assertEqual(int(metrics["first_nonfinite"]), expected)
    self.assertEqual(metrics["first_nonfinite"].dtype, jnp.int32)
    np.testing.assert_allclose(metrics["x/count"], 5.0)
    if expected == -1:
      # (0 + 1 + 2 + 3 + 4) / 5 = 2
      np.testing.assert_allclose(metrics["x/value"], 2.0)
    else:
      self.assertFalse(np.isfinite(metrics["x/value"]))


class OffPolicyTrainTest(chex.TestCase):
  def test_train_under_jit_and_vmap_over_seeds(self):
    # Catch with 4 rows: every episode lasts exactly 3 steps.
    num_seeds, num_iterations, num_envs, unroll = 2, 5, 4, 4
    trainer = make_trainer(
      num_envs=num_envs,
      unroll_length=unroll,
      num_iterations=num_iterations,
      min_size=16,
    )
    self.assertEqual(trainer.env_steps_per_iteration, 16)
    run = jax.jit(
      jax.vmap(chex.assert_max_traces(lambda k: train.train(trainer, k), n=1))
    )
    states, metrics = run(jax.random.split(jax.random.key(0), num_seeds))
    np.testing.assert_array_equal(states.iteration, [5, 5])
    # 16 items per iteration reach min_size = 16 at once: 5 * 2 updates.
    np.testing.assert_array_equal(states.agent.step, [10, 10])
    np.testing.assert_array_equal(states.buffer.size, [80, 80])  # 5 * 16
    chex.assert_shape(metrics["count/learner"], (2, 5))
    np.testing.assert_array_equal(metrics["count/learner"], 2.0)
    chex.assert_tree_all_finite(metrics)
    chex.assert_tree_all_finite(states.agent.params)
    # In 20 steps each of 4 worlds ends 6 episodes (at steps 3, 6, ..., 18).
    np.testing.assert_array_equal(
      jnp.sum(metrics["count/episode"], axis=1), [24.0, 24.0]
    )

    # Each seed is its own run: its own init, worlds and updates.
    leaf = jax.tree.leaves(states.agent.params)[0]
    self.assertFalse(np.allclose(leaf[0], leaf[1]))
    data = states.buffer.data
    self.assertFalse(np.array_equal(data.obs_tm1[0], data.obs_tm1[1]))
    loss = metrics["sum/learner/loss"]
    self.assertFalse(np.allclose(loss[0], loss[1]))

    for seed in range(num_seeds):
      # Each iteration adds its [T, N] unroll flattened time-major, so the
      # (unwrapped) buffer is one [5 * T, N] time-major trajectory.
      traj = jax.tree.map(
        lambda x, seed=seed: np.asarray(x[seed, :80]).reshape(
          (num_iterations * unroll, num_envs) + x.shape[2:]
        ),
        data,
      )
      per_seed = jax.tree.map(lambda x, seed=seed: x[seed], metrics)
      self._check_transitions(traj, per_seed)

    run(jax.random.split(jax.random.key(1), num_seeds))  # no retrace

  def _check_transitions(self, traj, metrics):
    terminal = traj.discount_t == 0.0  # [T, N]
    # Episodes start together and last 3 steps: steps 2, 5, ..., 17 end them.
    self.assertTrue(np.all(terminal[2::3]))
    self.assertEqual(int(terminal.sum()), 24)
    # Catch pays +-1 exactly on the terminal step and 0 elsewhere.
    np.testing.assert_array_equal(traj.reward_t != 0.0, terminal)
    self.assertTrue(np.all(np.abs(traj.reward_t[terminal]) == 1.0))
    # obs_t is the true successor: on a terminal step, the finished episode's
    # last frame, whose ball is on the bottom row (possibly under the paddle),
    # not the fresh reset frame; the next step starts from the ball in row 0.
    ball_above_bottom = has_ball(traj.obs_t[:, :, :-1]).any(axis=-1)  # [T, N]
    np.testing.assert_array_equal(ball_above_bottom, ~terminal)
    self.assertTrue(np.all(has_ball(traj.obs_tm1[1:, :, 0])[terminal[:-1]]))
    # Mid-episode, the next step starts from obs_t.
    mid = ~terminal[:-1]
    np.testing.assert_array_equal(traj.obs_t[:-1][mid], traj.obs_tm1[1:][mid])
    # Episode metrics sum the final rewards (Catch's only reward).
    np.testing.assert_allclose(
      jnp.sum(metrics["sum/episode/return"]), traj.reward_t.sum()
    )
    np.testing.assert_allclose(
      jnp.sum(metrics["sum/episode/success"]), (traj.reward_t > 0).sum()
    )


class CountingAgent:
  """A stand-in agent: counts updates and sums the sampled rewards."""

  @staticmethod
  def make(num_actions: int):
    def init(key, obs, action):
      del key, obs
      chex.assert_rank(action, 1)  # an example batch of discrete actions
      return {
        "updates": jnp.zeros((), jnp.int32),
        "reward_sum": jnp.zeros((), jnp.float32),
        "terminal_sum": jnp.zeros((), jnp.float32),
      }

    def act(state, obs, key, deterministic=False):
      del state, deterministic
      n = obs.shape[0]
      return jax.random.randint(key, (n,), 0, num_actions, jnp.int32), {}

    def update(state, batch):
      new = {
        "updates": state["updates"] + 1,
        "reward_sum": state["reward_sum"] + jnp.sum(batch.reward_t),
        "terminal_sum": state["terminal_sum"] + jnp.sum(1.0 - batch.discount_t),
      }
      return new, {"batch_reward": jnp.mean(batch.reward_t)}

    return types.Agent(init=init, act=act, update=update)


class OfflineTrainTest(chex.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.env = catch.make_catch(rows=4, cols=3)
    cls.episodes = catch_expert_episodes(cls.env)

  def make(self, iterations=6, updates=3, batch=5):
    return train.make_offline_train(
      self.env,
      self.env.init_model(),
      CountingAgent.make(self.env.spec.num_actions),
      train.offline_data(self.episodes),
      batch_size=batch,
      num_updates_per_iteration=updates,
      num_iterations=iterations,
      num_eval_episodes=4,
    )

  def test_updates_and_batches(self):
    trainer = self.make()
    state, metrics = jax.jit(functools.partial(train.train, trainer))(
      jax.random.key(1)
    )
    self.assertEqual(int(state.iteration), 6)
    self.assertEqual(int(state.agent["updates"]), 18)
    # The expert always catches: every episode's one terminal step has
    # reward +1 and every other step 0, so a batch's mean reward equals its
    # share of terminal transitions, and no padding step is ever drawn.
    np.testing.assert_allclose(
      state.agent["reward_sum"], state.agent["terminal_sum"]
    )
    share = float(np.sum(self.episodes.terminated)) / float(
      np.sum(self.episodes.length)
    )
    mean = float(state.agent["reward_sum"]) / (18 * 5)
    self.assertGreater(mean, 0.0)
    self.assertLess(abs(mean - share), 0.25)
    chex.assert_shape(metrics["sum/learner/batch_reward"], (6,))
    np.testing.assert_array_equal(metrics["count/learner"], 3.0)

  def test_same_key_same_run(self):
    trainer = self.make()
    run = jax.jit(functools.partial(train.train, trainer))
    a, _ = run(jax.random.key(2))
    b, _ = run(jax.random.key(2))
    c, _ = run(jax.random.key(3))
    chex.assert_trees_all_equal(a.agent, b.agent)
    self.assertFalse(
      np.array_equal(jax.random.key_data(a.key), jax.random.key_data(c.key))
    )

  def test_the_state_holds_no_dataset(self):
    trainer = self.make()
    state = jax.jit(trainer.init)(jax.random.key(0))
    dataset_bytes = sum(x.nbytes for x in jax.tree.leaves(trainer.data))
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    # Every image of the dataset lives in `data`; the state is a few
    # counters and the agent.
    self.assertLess(state_bytes, 100)
    self.assertGreater(dataset_bytes, 8 * 4 * 4 * 3)
    # The step reads the dataset from its argument: other data, other run.
    step = jax.jit(trainer.step)
    shuffled = trainer.data._replace(
      episodes=trainer.data.episodes._replace(
        reward=jnp.zeros_like(trainer.data.episodes.reward)
      )
    )
    a, _ = step(state, trainer.data)
    b, _ = step(state, shuffled)
    self.assertGreater(float(a.agent["reward_sum"]), 0.0)
    self.assertEqual(float(b.agent["reward_sum"]), 0.0)

  def test_evaluate_reports_env_metrics(self):
    trainer = self.make()
    state = jax.jit(trainer.init)(jax.random.key(0))
    metrics = jax.jit(trainer.evaluate)(state.agent, jax.random.key(1))
    self.assertIn("eval/return", metrics)
    self.assertTrue(np.isfinite(metrics["eval/return"]))

  def test_empty_dataset_raises(self):
    empty = self.episodes._replace(length=np.zeros_like(self.episodes.length))
    with self.assertRaisesRegex(ValueError, "no transitions"):
      train.offline_data(empty)

  def test_shards_of_consecutive_episodes(self):
    # 8 episodes of at most 3 steps over 4 devices: uneven slices. Every
    # (episode, step) gets its own reward, so a batch shows what it drew.
    length = np.array([1, 3, 2, 3, 1, 1, 3, 2], np.int32)
    reward = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    episodes = self.episodes._replace(length=length, reward=reward)
    shards = train.offline_data_shards(episodes, 4)
    chex.assert_shape(shards.episodes.obs, (4, 2) + episodes.obs.shape[1:])
    np.testing.assert_array_equal(shards.num_transitions, [4, 5, 2, 5])
    chex.assert_shape(shards.index, (4, 5, 2))
    sample = offline.make_sampler(64)
    for d in range(4):
      own = offline.transition_index(length[2 * d : 2 * d + 2])
      n = int(shards.num_transitions[d])
      np.testing.assert_array_equal(shards.index[d, :n], own)
      # Padding rows made visible: step 2 of the slice's first episode,
      # past its end in slices 0 and 2.
      index = shards.index[d].copy()
      index[n:] = (0, 2)
      own_slice = jax.tree.map(lambda x, d=d: x[d], shards.episodes)
      allowed = {float(reward[2 * d + e, t]) for e, t in own}
      batch = sample(own_slice, index, jax.random.key(d), n)
      self.assertLessEqual(set(np.asarray(batch.reward_t).tolist()), allowed)
      if d in (0, 2):  # Control: drawing from every row reaches the padding.
        batch = sample(own_slice, index, jax.random.key(d))
        self.assertFalse(set(np.asarray(batch.reward_t).tolist()) <= allowed, d)
    with self.assertRaisesRegex(ValueError, "8 episodes .* over 3 devices"):
      train.offline_data_shards(episodes, 3)

  def test_held_out_episodes_feed_the_batch_tail(self):
    # Every step's reward is its episode's number: a batch shows its rows.
    num = len(self.episodes.length)
    length = np.asarray(self.episodes.length)
    episodes = self.episodes._replace(
      reward=np.broadcast_to(
        np.arange(num, dtype=np.float32)[:, None],
        self.episodes.reward.shape,
      ).copy()
    )
    data = train.offline_data(episodes, holdout_every=4)  # episodes 3, 7
    held = int(length[3] + length[7])
    self.assertEqual(int(data.num_holdout), held)
    np.testing.assert_array_equal(
      np.isin(np.asarray(data.index)[:, 0], [3, 7]),
      np.arange(int(data.num_transitions)) < held,
    )

    def update(state, batch):
      in_held = jnp.isin(batch.reward_t, jnp.array([3.0, 7.0]))
      return state, {
        "first_held": jnp.sum(in_held[:5]),
        "last_held": jnp.sum(in_held[5:]),
        "size": jnp.float32(batch.reward_t.shape[0]),
      }

    agent = CountingAgent.make(self.env.spec.num_actions)._replace(
      update=update
    )
    make = functools.partial(
      train.make_offline_train,
      self.env,
      self.env.init_model(),
      agent,
      num_updates_per_iteration=4,
      num_iterations=1,
      num_eval_episodes=2,
    )
    trainer = make(data, batch_size=5, holdout_batch_size=6)
    state = jax.jit(trainer.init)(jax.random.key(0))
    _, metrics = jax.jit(trainer.step)(state, trainer.data)
    self.assertEqual(float(metrics["sum/learner/first_held"]), 0.0)
    self.assertEqual(float(metrics["sum/learner/last_held"]), 4 * 6.0)
    self.assertEqual(float(metrics["sum/learner/size"]), 4 * 11.0)
    # Control: without the split, batches mix both kinds of episodes.
    mixed = make(data, batch_size=11)
    _, metrics = jax.jit(mixed.step)(state, mixed.data)
    self.assertGreater(float(metrics["sum/learner/first_held"]), 0.0)
    # Per-device slices hold out their own episodes (local numbers 1, 3).
    shards = train.offline_data_shards(episodes, 2, holdout_every=2)
    for d in range(2):
      n = int(shards.num_holdout[d])
      self.assertEqual(n, int(length[4 * d + 1] + length[4 * d + 3]))
      np.testing.assert_array_equal(shards.index[d, :n, 0] % 2, 1)
    with self.assertRaisesRegex(ValueError, "held-out episodes"):
      make(train.offline_data(episodes), batch_size=5, holdout_batch_size=2)
    with self.assertRaisesRegex(ValueError, "holding out every 9th"):
      train.offline_data(episodes, holdout_every=9)

  def test_data_parallel_arguments_checked(self):
    make = functools.partial(
      train.make_offline_train,
      self.env,
      self.env.init_model(),
      CountingAgent.make(self.env.spec.num_actions),
      num_updates_per_iteration=1,
      num_iterations=1,
      num_eval_episodes=2,
    )
    shards = train.offline_data_shards(self.episodes, 2)
    one = train.offline_data(self.episodes)
    with self.assertRaisesRegex(ValueError, "batch_size 5 .* 2 devices"):
      make(shards, batch_size=5, axis_name="d", num_devices=2)
    with self.assertRaisesRegex(ValueError, "offline_data_shards"):
      make(one, batch_size=4, axis_name="d", num_devices=2)
    with self.assertRaisesRegex(ValueError, "offline_data\\(episodes\\)"):
      make(shards, batch_size=4)
    make(shards, batch_size=4, axis_name="d", num_devices=2)  # fits


def _key_data(tree):
  """`tree` with its PRNG keys as their raw integer data."""

  def plain(x):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.key_data(x)
    return x

  return jax.tree.map(plain, tree)


class EpisodeProgramsTest(chex.TestCase):
  """`run_episodes` from the host = `make_run_episodes`' scan."""

  def test_host_run_equals_scan_and_shares_the_env_program(self):
    env = catch.make_catch(rows=5, cols=4)
    model = env.init_model()
    n = 32

    def act(env_state, key):  # random moves: the step keys matter
      del env_state
      return jax.random.randint(key, (n,), 0, env.spec.num_actions)

    key = jax.random.key(3)
    scan = jax.jit(
      functools.partial(train.make_run_episodes(env, model, n), act)
    )(key)
    programs = train.make_episode_programs(env, model, n)
    host = train.run_episodes(programs, jax.jit(act), key)
    chex.assert_trees_all_equal(host, scan)
    self.assertGreater(len(np.unique(np.asarray(scan.returns))), 1)
    # A second act (another agent) runs in the same compiled env programs.
    train.run_episodes(
      programs, jax.jit(lambda s, k: jnp.zeros((n,), jnp.int32)), key
    )
    self.assertEqual(programs.advance._cache_size(), 1)
    self.assertEqual(programs.start._cache_size(), 1)


class SeedsTest(chex.TestCase):
  """`vmap_seeds`: S runs in one program equal S separate runs."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.env = catch.make_catch(rows=4, cols=3)
    model = cls.env.init_model()
    episodes = catch_expert_episodes(cls.env)
    dqn_agent = make_dqn_agent(cls.env, learning_rate=1e-2)
    # The offline trainer inits agents with (key, obs, action) examples.
    agent = dqn_agent._replace(
      init=lambda key, obs, action: dqn_agent.init(key, obs)
    )
    cls.trainer = train.make_offline_train(
      cls.env,
      model,
      agent,
      train.offline_data(episodes),
      batch_size=4,
      num_updates_per_iteration=2,
      num_iterations=3,
      num_eval_episodes=4,
    )

  @parameterized.parameters("vmap", "unroll")
  def test_seeds_equal_separate_runs(self, batching):
    seeds = train.vmap_seeds(self.trainer, 3, batching)
    key = jax.random.key(4)
    state = jax.jit(seeds.init)(key)
    step = jax.jit(seeds.step)
    for _ in range(3):
      state, metrics = step(state, seeds.data)
    chex.assert_shape(metrics["count/learner"], (3,))
    evaluation = jax.jit(seeds.evaluate)(state.agent, jax.random.key(5))
    single_step = jax.jit(self.trainer.step)
    for k, seed_key in enumerate(jax.random.split(key, 3)):
      alone = jax.jit(self.trainer.init)(seed_key)
      for _ in range(3):
        alone, alone_metrics = single_step(alone, self.trainer.data)
      own = jax.tree.map(lambda x, k=k: x[k], state)
      chex.assert_trees_all_close(
        _key_data(own), _key_data(alone), rtol=1e-5, atol=1e-6
      )
      np.testing.assert_allclose(
        metrics["sum/learner/loss"][k],
        alone_metrics["sum/learner/loss"],
        rtol=1e-5,
      )
      alone_eval = jax.jit(self.trainer.evaluate)(
        alone.agent, jax.random.key(5)
      )
      np.testing.assert_allclose(
        evaluation["eval/return"][k], alone_eval["eval/return"], rtol=1e-5
      )
    # From the host, seed by seed, in the shared episode programs.
    host = seeds.host_evaluate(state.agent, jax.random.key(5))
    chex.assert_trees_all_close(host, evaluation, rtol=1e-5)
    # Different seeds, different runs.
    self.assertFalse(
      np.allclose(
        jax.tree.leaves(state.agent.params)[0][0],
        jax.tree.leaves(state.agent.params)[0][1],
      )
    )

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "num_seeds"):
      train.vmap_seeds(self.trainer, 0)
    with self.assertRaisesRegex(ValueError, "batching"):
      train.vmap_seeds(self.trainer, 2, "pmap")
    with self.assertRaisesRegex(ValueError, "already"):
      train.vmap_seeds(train.vmap_seeds(self.trainer, 2), 2)


class DQNCatchSmokeTest(chex.TestCase):
  def test_dqn_learns_catch(self):
    num_iterations = 400
    trainer = make_trainer(
      rows=10,
      cols=5,
      channels=(16,),
      hidden_sizes=(64,),
      learning_rate=1e-3,
      epsilon_decay_steps=500,
      capacity=10_000,
      batch_size=64,
      min_size=256,
      num_envs=16,
      unroll_length=4,
      num_updates_per_iteration=2,
      num_iterations=num_iterations,
      num_eval_episodes=100,
    )
    state, metrics = jax.jit(lambda k: train.train(trainer, k))(
      jax.random.key(0)
    )
    result = jax.jit(trainer.evaluate)(state.agent, jax.random.key(1))

    # 64 items per iteration reach min_size = 256 in iteration 3 (0-based),
    # so (400 - 3) * 2 = 794 updates; 400 * 64 = 25600 items wrap 10000 slots.
    self.assertEqual(int(state.iteration), 400)
    self.assertEqual(int(state.agent.step), 794)
    self.assertEqual(int(state.buffer.size), 10_000)
    self.assertEqual(int(state.buffer.insert_pos), 5600)  # 25600 % 10000
    chex.assert_shape(metrics["count/episode"], (num_iterations,))
    chex.assert_tree_all_finite(state.agent.params)
    # Learning is skipped until can_sample, then runs 2 updates an iteration.
    np.testing.assert_array_equal(metrics["count/learner"][:3], 0.0)
    np.testing.assert_array_equal(metrics["count/learner"][3:], 2.0)
    np.testing.assert_array_equal(metrics["sum/learner/loss"][:3], 0.0)

    # Greedy eval: random play scores about -0.6 on this Catch.
    self.assertGreaterEqual(float(result["eval/return"]), 0.8)
    # Catch returns are +-1, so success = (return + 1) / 2.
    np.testing.assert_allclose(
      result["eval/success"], (result["eval/return"] + 1) / 2, atol=1e-6
    )
    # Training returns improve too, even with epsilon-greedy exploration.
    first = train.reduce_metrics(jax.tree.map(lambda x: x[:50].sum(), metrics))
    last = train.reduce_metrics(jax.tree.map(lambda x: x[-50:].sum(), metrics))
    self.assertLess(float(first["episode/return"]), 0.0)
    self.assertGreater(float(last["episode/return"]), 0.5)


if __name__ == "__main__":
  absltest.main()
