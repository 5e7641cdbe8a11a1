import { describe, expect, it } from 'vitest';
import { takeTokenFromFragment } from './auth-token.js';

describe('takeTokenFromFragment', () => {
  it.each([
    ['#token=abc', 'abc', '#/'],
    ['#token=a%2Bb%3D', 'a+b=', '#/'],
    ['#/agents/gw-1?token=abc', 'abc', '#/agents/gw-1'],
    ['#/agents/gw-1?token=abc&x=1', 'abc', '#/agents/gw-1?x=1'],
    ['#/agents/gw-1?x=1&token=abc', 'abc', '#/agents/gw-1?x=1'],
    ['#token=', undefined, '#/'],
  ])('%s -> token %s, fragment %s', (fragment, token, rest) => {
    expect(takeTokenFromFragment(fragment)).toEqual({ token, fragment: rest });
  });

  it('leaves a fragment without a token alone', () => {
    expect(takeTokenFromFragment('#/agents/tokenizer')).toEqual({ token: undefined, fragment: '#/agents/tokenizer' });
    expect(takeTokenFromFragment('')).toEqual({ token: undefined, fragment: '' });
  });
});
